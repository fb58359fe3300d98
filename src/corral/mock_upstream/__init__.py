"""A deterministic model server for tests and demos (`corral mock-upstream`).

It speaks /v1/responses and /v1/chat/completions. What it answers is scripted by directives in
the last user message:

- `[[call NAME {json}]]` — call function NAME with those arguments; several directives are played
  one per turn, each after the previous call's output came back. `[[calls N1 {..} ;; N2 {..}]]`
  makes parallel calls in one turn.
- `[[error STATUS]]` — answer with that HTTP status; `[[die]]` — start streaming, then drop the
  connection; `[[fail]]` — stream, then an error event (Responses) or error chunk (chat).
- `[[slow MS]]` — wait MS milliseconds between streamed deltas; `[[length]]` — stop at
  max tokens (incomplete); `[[reasoning]]` — think first (a reasoning item).
- `[[say TEXT]]` — answer TEXT instead of the default echo.

Otherwise it answers `You said: <text>`; after tool calls, `Done. Last tool output: <output>`.
`GET /_mock/requests` lists the bodies it received; `DELETE /_mock/requests` forgets them.
"""
