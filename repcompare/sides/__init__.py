"""What is compared: the input plan, a model's captured batches, a model or file side,
the aligned batch stream, and building sides from the names a user gives."""
