//! How session frames travel through the server.
