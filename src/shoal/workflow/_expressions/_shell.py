"""POSIX shell quoting and word splitting, as ``shellquote()`` and ``shellparse()`` define them.

Quoting leaves plain words alone, backslash-escapes shell metacharacters in words without
blanks, and single-quotes words with blanks (``'it'\\''s'`` style for quotes inside).
"""

from __future__ import annotations

from shoal.workflow._expressions._errors import ExpressionError

_SPECIAL = frozenset("\\'\"`${[|&;<>()*?!")
_BLANKS = frozenset(" \t\n")
_DOUBLE_ESCAPES = frozenset('$`"\n\\')


def quote_word(word: str) -> str:
    if not word:
        return "''"
    if any(char in _BLANKS for char in word):
        out: list[str] = []
        while True:
            index = word.find("'")
            if index == -1:
                break
            if index > 0:
                out.append("'" + word[:index] + "'")
            out.append("\\'")
            word = word[index + 1 :]
        if word:
            out.append("'" + word + "'")
        return "".join(out)
    if not any(char in _SPECIAL for char in word) and not word.startswith("~"):
        return word
    escaped = [("\\" + char if char in _SPECIAL else char) for char in word]
    if word.startswith("~"):
        escaped[0] = "\\~"
    return "".join(escaped)


def quote_words(words: list[str]) -> str:
    return " ".join(quote_word(word) for word in words)


def split_words(text: str) -> list[str]:
    """Split like a POSIX shell would (quotes and backslashes; no expansion)."""
    words: list[str] = []
    i = 0
    end = len(text)
    while i < end:
        char = text[i]
        if char in _BLANKS:
            i += 1
            continue
        if char == "\\":
            if i + 1 >= end:
                raise ExpressionError("unterminated backslash-escape")
            if text[i + 1] == "\n":
                i += 2
                continue
        word, i = _split_word(text, i)
        words.append(word)
    return words


def _split_word(text: str, i: int) -> tuple[str, int]:
    buf: list[str] = []
    end = len(text)
    while i < end:
        char = text[i]
        if char == "'":
            close = text.find("'", i + 1)
            if close == -1:
                raise ExpressionError("unterminated single-quoted string")
            buf.append(text[i + 1 : close])
            i = close + 1
        elif char == '"':
            i += 1
            while True:
                if i >= end:
                    raise ExpressionError("unterminated double-quoted string")
                inner = text[i]
                if inner == '"':
                    i += 1
                    break
                if inner == "\\" and i + 1 < end:
                    following = text[i + 1]
                    if following in _DOUBLE_ESCAPES:
                        if following != "\n":
                            buf.append(following)
                    else:
                        buf.append(inner + following)
                    i += 2
                    continue
                buf.append(inner)
                i += 1
        elif char == "\\":
            if i + 1 >= end:
                raise ExpressionError("unterminated backslash-escape")
            if text[i + 1] != "\n":
                buf.append(text[i + 1])
            i += 2
        elif char in _BLANKS:
            return "".join(buf), i + 1
        else:
            buf.append(char)
            i += 1
    return "".join(buf), i
