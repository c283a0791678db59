"""Built-in chat templates, for a GGUF that carries none or one that cannot be used.

The fallback must fit the model's vocabulary: ChatML markers that are not control tokens of the
vocabulary become plain text the model has never seen as structure, and a small base model then
writes "<|im_start|>" back (measured with Gemma 3 270M). So the fallback is the turn format whose
markers the vocabulary defines as single tokens (Gemma's <start_of_turn>, ChatML's <|im_start|>),
else a plain-text prompt ending in "Answer:" that any base model continues, with stop strings for
when it starts a new question of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Gemma has no system role: the system text opens the first user turn, as Google's template does
GEMMA = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}{% endfor %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n' }}"
    "{% if loop.first %}{{ ns.system }}{% endif %}{{ m['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PLAIN = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ 'Answer: ' + m['content'] + '\\n\\n' }}"
    "{% else %}{{ m['content'] + '\\n\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Answer:{% endif %}"
)


@dataclass(frozen=True)
class Template:
    name: str
    source: str
    stops: tuple[str, ...] = ()


BY_MARKER = (
    ("<start_of_turn>", Template("Gemma turns", GEMMA)),
    ("<|im_start|>", Template("ChatML", CHATML)),
)
PLAIN_TEXT = Template("plain text (Answer:)", PLAIN, ("\nQuestion:", "\nPassages:"))


def fallback(is_control_token: Callable[[str], bool]) -> Template:
    """The built-in template whose markers are single control tokens of the model's vocabulary."""
    for marker, template in BY_MARKER:
        if is_control_token(marker):
            return template
    return PLAIN_TEXT
