"""OpenAI wire types, ids and the error envelope."""
