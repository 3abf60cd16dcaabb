"""The control plane: what runs in the job coordinator actor (store, model registry, job manager and queue, Ray
submission). Front doors reach it through `control.coordinator`; it never imports the front door or torch."""
