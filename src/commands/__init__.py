"""The write model: the Resource aggregate decides, handlers load, decide, append and retry."""
