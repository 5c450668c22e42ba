"""Loaded by every process of a faithful-mode job environment (it sits in the venv's site-packages).

In a SageMaker cluster the hosts of a job are named algo-1, algo-2, ... and resolve through the
cluster's DNS; the training toolkits wait until every host in resourceconfig.json resolves. On this
machine they name processes on this machine, so they resolve to the loopback address, without root
and without touching /etc/hosts.
"""

import re
import socket

_HOST = re.compile(r"algo-\d+")
_gethostbyname = socket.gethostbyname
_getaddrinfo = socket.getaddrinfo


def _gethostbyname_local(host):
    return "127.0.0.1" if isinstance(host, str) and _HOST.fullmatch(host) else _gethostbyname(host)


def _getaddrinfo_local(host, *args, **kwargs):
    if isinstance(host, str) and _HOST.fullmatch(host):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.gethostbyname = _gethostbyname_local
socket.getaddrinfo = _getaddrinfo_local
