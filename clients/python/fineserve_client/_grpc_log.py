"""Imported first by the package, before grpc: gRPC's documented default verbosity (ERROR) unless the caller set
GRPC_VERBOSITY. Unset, gRPC's core logs each failed TLS handshake at INFO to stderr, a raw SSL trace ("Handshake
failed with error SSL_ERROR_SSL: ...WRONG_VERSION_NUMBER") beside the error the SDK raises and the CLI explains."""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
