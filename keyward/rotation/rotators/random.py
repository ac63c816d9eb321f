"""``random``: a generated value for application secrets (signing keys, API tokens, ...).

Options (``[[rotation.secrets]] rotator_options``)::

    length = 48              # characters
    alphabet = "alnum"       # alnum | hex | urlsafe | printable, or characters = "abc..."
    field = "value"          # which field of the secret receives the value

The value comes from :mod:`secrets` (a CSPRNG). There is nothing to set or retire: the
application that reads the secret is the only place it is enforced.
"""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keyward.core.errors import ConfigError
from keyward.rotation.errors import CredentialRejected
from keyward.rotation.protocols import (
    Retirement,
    RetireOutcome,
    RotationContext,
    SecretValue,
)

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext

ALPHABETS: dict[str, str] = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "printable": "".join(c for c in string.printable if c.isprintable() and not c.isspace()),
}
MIN_BITS = 96


def generate(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


class RandomRotator:
    kind = "random"
    # Nothing to deactivate or revoke: the rotation finishes without a grace period.
    retires = False

    def __init__(
        self, *, length: int = 48, alphabet: str = ALPHABETS["alnum"], field: str = "value"
    ):
        chars = "".join(dict.fromkeys(alphabet))  # unique, order kept
        if len(chars) < 2:
            raise ConfigError("The random rotator's alphabet needs at least two characters")
        if not 8 <= length <= 4096:
            raise ConfigError(
                f"The random rotator's length {length} is out of range",
                hint="Use a length between 8 and 4096",
            )
        bits = length * math.log2(len(chars))
        if bits < MIN_BITS:
            raise ConfigError(
                f"A {length}-character value from {len(chars)} characters has only "
                f"{bits:.0f} bits of entropy",
                hint=f"Use a longer value or a larger alphabet (at least {MIN_BITS} bits)",
            )
        self.length = length
        self.alphabet = chars
        self.field = field

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> RandomRotator:
        if "characters" in options:
            alphabet = str(options["characters"])
        else:
            name = str(options.get("alphabet", "alnum"))
            if name not in ALPHABETS:
                raise ConfigError(
                    f"Unknown alphabet {name!r} for the random rotator",
                    hint=f"Use one of {', '.join(ALPHABETS)}, or characters = '...'",
                )
            alphabet = ALPHABETS[name]
        return cls(
            length=int(options.get("length", 48)),
            alphabet=alphabet,
            field=str(options.get("field", "value")),
        )

    def __repr__(self) -> str:
        return f"RandomRotator(length={self.length}, field={self.field!r})"

    def plan(self, current: SecretValue) -> tuple[str, ...]:
        return (
            f"generate a {self.length}-character random value ({len(self.alphabet)}-character "
            f"alphabet) into field {self.field!r}",
        )

    def create(self, current: SecretValue, ctx: RotationContext) -> SecretValue:
        return current.replace(**{self.field: generate(self.length, self.alphabet)})

    def set(self, current: SecretValue, new: SecretValue) -> None:
        return None

    def test(self, new: SecretValue) -> None:
        value = new.get(self.field)
        if value is None or len(value) != self.length or not set(value) <= set(self.alphabet):
            raise CredentialRejected(
                f"The new value in field {self.field!r} does not match the random rotator's "
                "length and alphabet"
            )

    def deactivate(self, old: SecretValue, new: SecretValue) -> None:
        return None

    def revoke(self, old: SecretValue, new: SecretValue, deactivated_at: datetime) -> Retirement:
        return Retirement(RetireOutcome.NOT_APPLICABLE, "a random value has nothing to revoke")

    def rollback(self, current: SecretValue, new: SecretValue | None, ctx: RotationContext) -> None:
        return None
