"""The dashboard's headline in the city reports' own words (pure).

The reports round large counts down and say "余" (more than): "消除隐患 700 余处" for 738.
`about` is that rule; bookings and firms are quoted exactly ("已响应预约 145 次").
"""

from __future__ import annotations

WAN = 10_000  # 万


def about(count: int) -> str:
    """`count` as the reports write it: below 100 exactly; up to 999 rounded down to the
    hundred, from 1,000 to its first two digits, from 10,000 in 万 with one decimal;
    followed by " 余" whenever that dropped something (700 → "700", 738 → "700 余",
    1,234 → "1200 余", 12,345 → "1.2万 余")."""
    if count < 0:
        raise ValueError("a count is never negative")
    if count < 100:
        return str(count)
    if count >= WAN:
        tenths = count * 10 // WAN
        text = f"{tenths // 10}万" if tenths % 10 == 0 else f"{tenths / 10:.1f}万"
        return text + (" 余" if tenths * WAN // 10 != count else "")
    digits = len(str(count))
    step = 10 ** (digits - 1 if count < 1000 else digits - 2)
    floor = count // step * step
    return f"{floor}" + (" 余" if floor != count else "")
