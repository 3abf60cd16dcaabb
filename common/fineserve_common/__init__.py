"""What every part of fineserve shares, in pure Python (no torch, grpc or ray): the task table
(`tasks`), hyperparameter bounds (`bounds`), the typed job spec (`spec`) and job events (`events`), error
types (`errors`) and the model card (`card`). The front door, the control plane, the workers, the engine and
the SDK all import it; it imports none of them."""
