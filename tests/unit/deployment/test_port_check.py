"""`make run`'s port check (devtools.system.is_port_free) agrees with the server's own bind: a port whose
last connections are still in TIME_WAIT (a run stopped a moment ago) is free, one a program listens on is
not (issue 24: `make run` refused to start for a minute after a stop)."""
import socket

from devtools.system import is_port_free


def listener():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen()
    return server


def test_a_port_left_in_time_wait_is_free_and_a_listened_one_is_not():
    server = listener()
    port = server.getsockname()[1]
    assert not is_port_free(port)

    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()           # the server's side closes first: its end of the connection waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    with socket.socket() as plain:          # what the check did before: a bind without SO_REUSEADDR fails
        try:
            plain.bind(("0.0.0.0", port))
            time_wait_seen = False
        except OSError:
            time_wait_seen = True
    assert time_wait_seen, "the connection left no TIME_WAIT: the test shows nothing"
    assert is_port_free(port)
