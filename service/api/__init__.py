"""gRPC servicers: request validation and translation between the API and the service internals."""
