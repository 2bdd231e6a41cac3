"""The Textual chat app of agentmem."""
