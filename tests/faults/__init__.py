"""Fault-injection tests: each bad input or fault ends in a one-line error or correct behaviour."""
