"""The interactive ``corral run MODEL`` session on /api/chat, with Ollama's prompts and slash commands."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from services.api_client import ApiClient, ApiError
from services.cli import repl_help
from services.cli.commands import print_list
from services.cli.display import WordWrapper
from services.cli.images import attach_images, file_names
from services.cli.run import RunOptions, apply_show, chat_once, infer_think, load_or_unload
from services.cli.show import show_info
from services.errors import InvalidRequestError
from services.names import is_valid_name
from services.gocodec import go_quote, go_value_text
from services.options_table import parse_parameter
from services.settings import ClientSettings

PROMPT, ALT_PROMPT = ">>> ", "... "
PLACEHOLDER, ALT_PLACEHOLDER = "Send a message (/? for help)", "Press Enter to send"
STYLE = Style.from_dict({"placeholder": "ansibrightblack"})


class Interrupted(str):
    """What the prompt returns on Ctrl-C: the text that was on the line."""


class ToggleHistory(FileHistory):
    """File history that ``/set nohistory`` (or OLLAMA_NOHISTORY) stops writing to."""

    def __init__(self, path: Path, enabled: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(str(path))
        self.enabled = enabled

    def store_string(self, string: str) -> None:
        if self.enabled:
            super().store_string(string)


def history_path() -> Path:
    return Path.home() / ".corral" / "history"


def _key_bindings(editor: str) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        event.app.exit(result=Interrupted(event.app.current_buffer.text), style="class:aborting")

    @bindings.add("c-g")
    def _editor(event: KeyPressEvent) -> None:
        if editor:
            event.app.create_background_task(edit_in(editor, event.app.current_buffer))
        else:
            event.app.current_buffer.open_in_editor()  # $VISUAL, $EDITOR, then the usual suspects

    return bindings


async def edit_in(editor: str, buffer: Buffer) -> None:
    """Edit the line in ``editor`` (OLLAMA_EDITOR) and take back what it saved."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as draft:
        draft.write(buffer.text)
    try:
        command = [*shlex.split(editor), draft.name]
        if await run_in_terminal(lambda: subprocess.call(command) == 0, in_executor=True):
            text = Path(draft.name).read_text(encoding="utf-8").removesuffix("\n")
            buffer.document = Document(text, cursor_position=len(text))
    finally:
        os.unlink(draft.name)


class Repl:
    """One session: ``run`` reads lines until /bye or Ctrl-D and returns the exit status."""

    def __init__(self, client: ApiClient, opts: RunOptions, info: dict[str, Any],
                 settings: ClientSettings | None = None, **terminal: Any) -> None:
        """``terminal`` may pass prompt-toolkit's ``input``/``output`` (tests use a pipe)."""
        self.client, self.opts, self.info = client, opts, info
        settings = settings or ClientSettings()
        self.history = ToggleHistory(history_path(), not settings.nohistory)
        self.session: PromptSession[str] = PromptSession(
            history=self.history, key_bindings=_key_bindings(settings.editor), style=STYLE,
            reserve_space_for_menu=0, enable_history_search=False, **terminal)
        self.buffer: list[str] = []
        self.multiline: str | None = None  # None, "prompt" or "system"

    def _read(self) -> str:
        alt = self.multiline is not None
        placeholder = FormattedText([("class:placeholder", ALT_PLACEHOLDER if alt else PLACEHOLDER)])
        return self.session.prompt(ALT_PROMPT if alt else PROMPT, placeholder=placeholder)

    def run(self) -> int:
        self._replay_loaded_messages()
        while True:
            try:
                line = self._read()
            except EOFError:
                print()
                return 0
            if isinstance(line, Interrupted):
                if not line:
                    print("Use Ctrl + d or /bye to exit.")
                self.buffer, self.multiline = [], None
                continue
            if self._handle(line) == "exit":
                return 0

    def _replay_loaded_messages(self) -> None:
        for message in self.opts.loaded_messages:
            if message.get("role") == "user":
                print(f">>> {message.get('content', '')}")
            elif message.get("role") == "assistant":
                WordWrapper(wrap=self.opts.wordwrap and sys.stdout.isatty()).write(message.get("content", ""))
                print("\n")

    def _handle(self, line: str) -> str | None:
        """Process one input line; ``exit`` ends the session."""
        if self.multiline is not None:
            self._continue_multiline(line)
        elif line.startswith('"""'):
            text = line[3:]
            if text.endswith('"""'):
                self.buffer.append(text[:-3])
            else:
                self.buffer.append(text + "\n")
                self.multiline = "prompt"
        elif line.startswith("/") and not self._is_image_path(line):
            return self._command(line)
        else:
            self.buffer.append(line)
        if self.multiline is None:
            text, self.buffer = "".join(self.buffer), []
            if text:
                self._send(text)
        return None

    def _continue_multiline(self, line: str) -> None:
        if not line.endswith('"""'):
            self.buffer.append(line + "\n")
            return
        self.buffer.append(line[:-3])
        if self.multiline == "system":
            self.opts.system = "".join(self.buffer)
            self.opts.messages.append({"role": "system", "content": self.opts.system})
            print("Set system message.")
            self.buffer = []
        self.multiline = None

    def _is_image_path(self, line: str) -> bool:
        """A line starting with an image path (``/tmp/cat.png what is it?``) is a prompt."""
        word = line.split()[0]
        return self.opts.multimodal and any(name.startswith(word) for name in file_names(line))

    def _send(self, text: str) -> None:
        message: dict[str, Any] = {"role": "user", "content": text}
        if self.opts.multimodal:
            try:
                message["content"], images = attach_images(text)
            except ApiError as exc:
                print(f"error: {exc}")
                return
            if images:
                message["images"] = images
        self.opts.messages.append(message)
        try:
            answer = chat_once(self.client, self.opts)
        except ApiError as exc:
            if exc.bad_request:  # e.g. no thinking support, a bad think value: ask again
                print(f"error: {exc}")
                return
            raise
        if answer is not None:
            self.opts.messages.append(answer)

    def _command(self, line: str) -> str | None:
        args = line.split()
        word = args[0]
        for prefix, handler in (("/list", self._list), ("/load", self._load), ("/save", self._save),
                                ("/clear", self._clear), ("/set", self._set), ("/show", self._show),
                                ("/help", self._help), ("/?", self._help)):
            if word.startswith(prefix):
                handler(args)
                return None
        if word.startswith(("/exit", "/bye")):
            return "exit"
        print(f"Unknown command '{word}'. Type /? for help")
        return None

    def _list(self, args: list[str]) -> None:
        print_list(self.client, args[1:])

    def _load(self, args: list[str]) -> None:
        if len(args) != 2:
            print("Usage:\n  /load <modelname>")
            return
        original = self.opts.copy()
        self.opts.model, self.opts.messages, self.opts.loaded_messages = args[1], [], []
        print(f"Loading model '{self.opts.model}'")
        try:
            info = self.client.request("POST", "/api/show", {"model": self.opts.model})
            apply_show(self.opts, info)
            self.opts.think = infer_think(info, self.opts)
            load_or_unload(self.client, self.opts)
        except ApiError as exc:
            if exc.not_found:
                print(f"Couldn't find model '{self.opts.model}'")
                self.opts = original
                return
            if exc.bad_request:  # e.g. the model does not support thinking
                print(f"error: {exc}")
                return
            raise
        self.info = info

    def create_request(self, name: str) -> dict[str, Any]:
        """Ollama's NewCreateRequest: the session as a new model derived from the current one."""
        parent = self.opts.parent_model if is_valid_name(self.opts.parent_model or "") else ""
        request: dict[str, Any] = {"model": name, "from": parent or self.opts.model}
        if self.opts.system:
            request["system"] = self.opts.system
        if self.opts.options:
            request["parameters"] = self.opts.options
        messages = [*self.opts.loaded_messages, *self.opts.messages]
        if messages:
            request["messages"] = messages
        return request

    def _save(self, args: list[str]) -> None:
        if len(args) != 2:
            print("Usage:\n  /save <modelname>")
            return
        if not is_valid_name(args[1]):  # the server's grammar, checked before asking it
            print(f"error: The model name '{args[1]}' is invalid")
            return
        try:
            for _ in self.client.stream("/api/create", self.create_request(args[1])):
                pass
        except ApiError as exc:
            if exc.bad_request:
                print(f"error: {exc}")
                return
            raise
        print(f"Created new model '{args[1]}'")

    def _clear(self, _args: list[str]) -> None:
        self.opts.messages = []
        if self.opts.system:
            self.opts.messages.append({"role": "system", "content": self.opts.system})
        print("Cleared session context")

    def _set(self, args: list[str]) -> None:
        if len(args) < 2:
            repl_help.usage_set()
            return
        simple = {"wordwrap": ("wordwrap", True, "Set 'wordwrap' mode."),
                  "nowordwrap": ("wordwrap", False, "Set 'nowordwrap' mode."),
                  "verbose": ("verbose", True, "Set 'verbose' mode."),
                  "quiet": ("verbose", False, "Set 'quiet' mode."),
                  "noformat": ("format", "", "Disabled format.")}
        what = args[1]
        if what in simple:
            attr, value, message = simple[what]
            setattr(self.opts, attr, value)
            print(message)
        elif what in ("history", "nohistory"):
            self.history.enabled = what == "history"
        elif what in ("think", "nothink"):
            self._set_think(what, args[2] if len(args) > 2 else "")
        elif what == "format":
            if len(args) < 3 or args[2] != "json":
                print("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                self.opts.format = "json"
                print("Set format to 'json' mode.")
        elif what == "parameter":
            self._set_parameter(args)
        elif what == "system":
            self._set_system(args)
        else:
            print(f"Unknown command '/set {what}'. Type /? for help")

    def _set_think(self, what: str, level: str) -> None:
        self.opts.think = (level or True) if what == "think" else False
        self.opts.think_explicit = True
        if "thinking" not in (self.info.get("capabilities") or []):
            print(f"warning: model {go_quote(self.opts.model)} does not support thinking output",
                  file=sys.stderr)
        if what == "nothink":
            print("Set 'nothink' mode.")
        else:
            print(f"Set 'think' mode to '{level}'." if level else "Set 'think' mode.")

    def _set_parameter(self, args: list[str]) -> None:
        if len(args) < 4:
            repl_help.usage_parameters()
            return
        name, values = args[2], args[3:]
        try:
            self.opts.options[name] = parse_parameter(name, values)
        except InvalidRequestError as exc:
            print(f"Couldn't set parameter: {go_quote(exc.message)}")
            return
        print(f"Set parameter '{name}' to '{', '.join(values)}'")

    def _set_system(self, args: list[str]) -> None:
        if len(args) < 3:
            repl_help.usage_set()
            return
        text = " ".join(args[2:])
        if text.startswith('"""'):
            text = text[3:]
            if text.endswith('"""') and len(text) >= 3:
                text = text[:-3]
            else:
                self.buffer, self.multiline = [text + "\n"], "system"
                return
        self.opts.system = text
        message = {"role": "system", "content": text}
        if self.opts.messages and self.opts.messages[-1]["role"] == "system":
            self.opts.messages[-1] = message
        else:
            self.opts.messages.append(message)
        print("Set system message.")

    def _show(self, args: list[str]) -> None:
        if len(args) < 2:
            repl_help.usage_show()
            return
        request: dict[str, Any] = {"model": self.opts.model}
        if self.opts.system:
            request["system"] = self.opts.system
        if self.opts.options:
            request["options"] = self.opts.options
        try:
            resp = self.client.request("POST", "/api/show", request)
        except ApiError:
            print("error: couldn't get model")
            raise
        self._show_part(args[1], resp)

    def _show_part(self, what: str, resp: dict[str, Any]) -> None:
        if what == "info":
            sys.stderr.write(show_info(resp))
        elif what == "license":
            print(resp.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            print(resp.get("modelfile", ""))
        elif what == "parameters":
            self._show_parameters(resp.get("parameters") or "")
        elif what == "system":
            system = self.opts.system or resp.get("system")
            print(system + "\n" if system else "No system message was specified for this model.")
        elif what == "template":
            print(resp.get("template") or "No prompt template was specified for this model.")
        else:
            print(f"Unknown command '/show {what}'. Type /? for help")

    def _show_parameters(self, model_parameters: str) -> None:
        print("Model defined parameters:")
        if not model_parameters:
            print("  No additional parameters were specified for this model.")
        for line in model_parameters.split("\n") if model_parameters else []:
            print(f"  {line}")
        print()
        if self.opts.options:
            print("User defined parameters:")
            for key, value in self.opts.options.items():
                print(f"  {key:<30} {go_value_text(value)}")
            print()

    def _help(self, args: list[str]) -> None:
        if len(args) < 2:
            repl_help.usage(self.opts.multimodal)
            return
        topic = args[1].lstrip("/")
        if topic == "set":
            repl_help.usage_set()
        elif topic == "show":
            repl_help.usage_show()
        elif topic in ("shortcut", "shortcuts"):
            repl_help.usage_shortcuts()
