"""Fine-tuning: run settings, packed batches, the loop, validation loss, checkpoints, publishing."""
