"""A small agent that uses Corral's code interpreter, with the plain OpenAI SDK.

    corral serve --upstream http://127.0.0.1:8000/v1        # your model server
    python examples/code_interpreter_agent.py --model Qwen/Qwen3-8B "Plot y = x^2 for x in 0..10"

It keeps one container across turns (`container: {type: auto}` plus `previous_response_id`),
prints what the code printed, and downloads the files the answer cites.
"""

import argparse
from pathlib import Path

from openai import OpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="+", help="one or more user turns, sent in order")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--model", required=True)
    parser.add_argument("--download-to", type=Path, default=Path("."))
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    previous = None
    for prompt in args.prompts:
        response = client.responses.create(
            model=args.model,
            input=prompt,
            tools=tools,  # type: ignore[arg-type]
            previous_response_id=previous,
            include=["code_interpreter_call.outputs"],
        )
        previous = response.id
        for item in response.output:
            if item.type == "code_interpreter_call":
                print(f"[python in {item.container_id}]\n{item.code}")
                for output in item.outputs or []:
                    if output.type == "logs":
                        print(f"[output]\n{output.logs}")
            elif item.type == "message":
                for part in item.content:
                    if part.type != "output_text":
                        continue
                    print(f"[assistant] {part.text}")
                    for annotation in part.annotations:
                        if annotation.type == "container_file_citation":
                            target = args.download_to / annotation.filename
                            data = client.containers.files.content.retrieve(
                                annotation.file_id, container_id=annotation.container_id
                            ).read()
                            target.write_bytes(data)
                            print(f"[saved {target} ({len(data)} bytes)]")


if __name__ == "__main__":
    main()
