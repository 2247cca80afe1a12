"""``posmon completion``: the scripts complete what the parser accepts, checked in a real bash where it exists."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from posmon.cli import main
from posmon.cli.completion import bash_script, fish_script, zsh_script
from posmon.cli.parser import build_parser


def complete_in_bash(script: str, *words: str) -> list[str]:
    """What bash offers for ``posmon WORDS...`` (the last word is the one being completed), as TAB would."""
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f'{script}\nCOMP_WORDS=(posmon {line}); COMP_CWORD={len(words)}; _posmon; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, check=True)
    return sorted(w for w in done.stdout.splitlines() if w)


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")


@needs_bash
def test_bash_completes_commands_options_and_choices(tmp_path, monkeypatch):
    script = bash_script(build_parser())
    assert complete_in_bash(script, "st") == ["status", "stop"]
    assert complete_in_bash(script, "--config", "x.toml", "res") == ["resume"]  # past a top-level option's value
    assert complete_in_bash(script, "status", "--j") == ["--json"]
    assert complete_in_bash(script, "status", "--c") == ["--config"]
    assert complete_in_bash(script, "status", "--watch", "--j") == ["--json"]  # its value is optional
    assert complete_in_bash(script, "open", "L") == ["LONG"]
    assert complete_in_bash(script, "completion", "") == ["--help", "-h", "bash", "fish", "zsh"]
    (tmp_path / "live.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert complete_in_bash(script, "status", "--config", "li") == ["live.toml"]


def test_the_command_prints_each_shells_script(capsys):
    for shell, marker in (("bash", "complete -F _posmon posmon"), ("zsh", "#compdef posmon"), ("fish", "complete -c")):
        assert main(["completion", shell]) == 0
        assert marker in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["completion", "tcsh"])
    assert refused.value.code == 2


def test_zsh_and_fish_scripts_name_every_command_and_its_options():
    parser = build_parser()
    zsh, fish = zsh_script(parser), fish_script(parser)
    for command in ("run", "status", "open", "close", "stop", "resume", "verify", "protect", "completion"):
        assert f"'{command}:" in zsh and f"        {command}) _arguments " in zsh
        assert f"-a {command} -d" in fish
    assert "'--json[print the daemon'\\''s JSON answer instead of text]'" in zsh
    assert "'1:side:(LONG SHORT)'" in zsh and "--config[configuration file" in zsh and ":config:_files" in zsh
    assert "__fish_seen_subcommand_from status' -l json" in fish


@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh on this machine")
def test_the_zsh_script_parses(tmp_path):
    path = tmp_path / "_posmon"
    path.write_text(zsh_script(build_parser()))
    subprocess.run(["zsh", "-n", str(path)], check=True)
