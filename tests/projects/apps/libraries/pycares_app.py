import pycares

channel = pycares.Channel(sock_state_cb=lambda fd, readable, writable: None)
