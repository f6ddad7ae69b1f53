"""The LLM side of the skills: code written against unit tests in a sandbox, and checked against a reference."""
