"""Currencies Stripe can charge in (https://docs.stripe.com/currencies), lower-case ISO 4217,
and the smallest and largest amount Stripe accepts for one charge in each."""

_CODES = """
usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bif bmd bnd bob brl bsd bwp byn
bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd
gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jpy kes kgs khr kmf krw kyd kzt lak lbp lkr
lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen
pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs
top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw
"""

CURRENCIES = frozenset(_CODES.split())

# Stripe's largest amount of one charge, in minor units: eight digits for most currencies
# (99,999,999 = $999,999.99), twelve for IDR.
# https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
DEFAULT_MAX_CHARGE = 99_999_999
MAX_CHARGE = {"idr": 999_999_999_999}

# Stripe's smallest charge per currency, in minor units (same page). A currency not listed
# here is checked by Stripe against the equivalent of USD 0.50 at the day's rate, which cannot
# be known ahead: such amounts are only required to be positive.
MIN_CHARGE = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,  # zero-decimal: ¥50
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}


def max_charge(currency: str) -> int:
    return MAX_CHARGE.get(currency, DEFAULT_MAX_CHARGE)


def min_charge(currency: str) -> int:
    return MIN_CHARGE.get(currency, 1)


def charge_amount_problem(amount: int, currency: str) -> str | None:
    """Why Stripe would refuse to charge `amount` minor units of `currency`, or None."""
    smallest, largest = min_charge(currency), max_charge(currency)
    code = currency.upper()
    if amount > largest:
        return f"{amount} exceeds Stripe's maximum charge of {largest} {code} minor units"
    if amount < smallest:
        return f"{amount} is below Stripe's minimum charge of {smallest} {code} minor units"
    return None
