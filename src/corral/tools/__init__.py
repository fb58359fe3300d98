"""One module per tool kind: function, mcp, code_interpreter, shell."""
