"""How numbers are written for people, in one place for the scripts (common/src/format.cpp is
the same for the labs): about three significant figures, a unit that suits the value."""


def fmt_number(value):
    if value != value:
        return "nan"
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


def fmt_value(value, unit="ns"):
    if unit != "ns":
        return f"{fmt_number(value)} {unit}"
    for scale, name in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if abs(value) >= scale:
            return f"{fmt_number(value / scale)} {name}"
    return f"{fmt_number(value)} ns"


def fmt_param(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return fmt_number(value)
    if isinstance(value, list):
        return ",".join(fmt_param(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def fmt_params(params):
    return ", ".join(f"{k}={fmt_param(v)}" for k, v in params.items())


def fmt_percent(fraction):
    return f"{fmt_number(100 * fraction)}%"
