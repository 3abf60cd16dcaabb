"""The ULMFiT tasks (language model, text classifier): AWD-LSTM, tokenizer, data, training job and serving."""
