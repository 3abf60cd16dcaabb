"""The fineserve front door.

Ray Serve reads its latency flags (its performance guide) once, when ray.serve is first imported; every
service module is imported after this package, so the front door's handle routes requests on the gRPC
server's own event loop rather than hopping to a second loop and back. A value in the environment wins.
The replicas' flag travels with the deployment (service/ray_serving.py, REPLICA_ENV).
"""

import os

os.environ.setdefault("RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP", "0")
