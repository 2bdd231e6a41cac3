"""Model clients.

Chat models (OpenAI-compatible, local llama.cpp), embedders, the retries and metering
around them, and token counting.
"""
