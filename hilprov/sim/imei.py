"""IMEIs for virtual boards: 15 digits, the last a Luhn check digit. Each `--board sim` gets a
fresh one, so virtual boards are distinct devices across boards, processes and runs; they are
test IMEIs (type allocation code starting 00), never a real device's."""

from __future__ import annotations

import secrets

TEST_PREFIX = "00"


def luhn_digit(digits: str) -> str:
    """The check digit that makes `digits` + it pass the Luhn test."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


def valid(imei: str) -> bool:
    return len(imei) == 15 and imei.isdigit() and luhn_digit(imei[:14]) == imei[14]


def random_imei() -> str:
    body = TEST_PREFIX + "".join(secrets.choice("0123456789") for _ in range(12))
    return body + luhn_digit(body)
