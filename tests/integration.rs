//! Integration tests: real server, real sockets, real peer clients.
