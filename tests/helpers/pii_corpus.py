"""A labelled multilingual PII corpus built with Faker: phone numbers, decoys, free-text notes with
names, addresses and phones (spans labelled), and hard negatives.

Everything is generated from a seed, so a failing measurement can be reproduced.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

LOCALES: tuple[str, ...] = ("de_DE", "fr_FR", "en_GB", "es_ES", "it_IT", "nl_NL", "en_US")

# One sentence frame per locale: {name}, {address}, {phone} are filled in and labelled.
_FRAMES: dict[str, tuple[str, ...]] = {
    "de_DE": ("Kunde {name} wohnt {address}. Rückruf unter Telefon {phone}.",
              "Frau {name} hat angerufen, Lieferadresse {address}.", "Ansprechpartner: {name}, Tel. {phone}"),
    "fr_FR": ("Client {name}, domicilié {address}. Téléphone : {phone}.",
              "Mme {name} a appelé, adresse de livraison {address}.", "Contact : {name}, tél. {phone}"),
    "en_GB": ("Customer {name} lives at {address}. Call back on phone {phone}.",
              "Dear {name}, your parcel goes to {address}.", "Contact: {name}, tel {phone}"),
    "es_ES": ("Cliente {name}, domicilio {address}. Teléfono {phone}.",
              "Sra. {name} llamó, dirección de entrega {address}.", "Contacto: {name}, teléfono {phone}"),
    "it_IT": ("Cliente {name}, residente in {address}. Telefono {phone}.",
              "Gentile {name}, spediamo a {address}.", "Contatto: {name}, telefono {phone}"),
    "nl_NL": ("Klant {name} woont {address}. Bel terug op telefoon {phone}.",
              "Geachte {name}, wij leveren op {address}.", "Contact: {name}, telefoon {phone}"),
    "en_US": ("Customer {name} lives at {address}. Call back on phone {phone}.",
              "Dear {name}, your parcel ships to {address}.", "Contact: {name}, tel {phone}"),
}

#: Text that must not yield PERSON / LOCATION / PHONE_NUMBER: products and companies, cities outside
#: addresses, street-like product names, people-like brand names, degrees, dates, versions, amounts.
HARD_NEGATIVES: tuple[str, ...] = (
    "The Hugo Boss suit and a Ted Baker shirt were returned.",
    "Tommy Hilfiger jackets are on sale; Louis Vuitton bags sold out.",
    "Ordered a Paul Smith wallet and Calvin Klein jeans.",
    "Schmidt GmbH and Müller AG signed the contract.",
    "Dupont SA acquired Rossi SpA last year.",
    "Our offices in Berlin, Paris, Madrid, Milano and Amsterdam are closed on Friday.",
    "Flights from London to Rome were delayed.",
    "Park Avenue shampoo 250ml is out of stock.",
    "The Abbey Road album was remastered.",
    "Sesamstraße ist eine Kindersendung.",
    "B.Sc. in Informatik, M.Sc. in Physik.",
    "Version 10.0.19041.1234 was installed on 2023-01-15.",
    "Invoice total: 1.234.567,89 EUR due 15.01.2024.",
    "Order 4821-3391-220 shipped at 2023-01-15 12:34:56.",
    "Build v2.10.4 released, 3.14159 rounded.",
    "Stock rose 12,345 points to 98 765 432 units.",
    "Meeting notes: quarterly report, next steps, follow up with the team.",
    "Das Produkt Weber Grill Spirit E-315 ist lieferbar.",
    "Rechnung Nr. 20240115 vom 15.01.2024 über 1.299,00 €.",
    "Commande 2023-000123 expédiée le 12/03/2023.",
)


@dataclass
class Note:
    """A text and its labelled spans ``(entity, start, end)``."""

    text: str
    locale: str
    spans: list[tuple[str, int, int]] = field(default_factory=list)


def _faker(locale: str, seed: int):
    import faker

    f = faker.Faker(locale)
    f.seed_instance(seed)
    return f


def phones(locale: str, n: int, seed: int = 0) -> list[str]:
    """``n`` phone numbers in the formats Faker writes for ``locale``."""
    f = _faker(locale, seed)
    return [f.phone_number() for _ in range(n)]


def decoys(n: int, seed: int = 0) -> list[str]:
    """Digit-heavy values that are not phone numbers: dates, timestamps, versions, amounts, order numbers."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
        hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
        out.append(rng.choice([
            f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{m:02d}/{d:02d}/{y}", f"{d}/{m}/{y % 100:02d}",
            f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}", f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z",
            f"{d:02d}.{m:02d}.{y} {hh:02d}:{mm:02d}",
            f"v{rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 300)}",
            f"{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(10000, 30000)}.{rng.randint(100, 9999)}",
            f"${rng.randint(1, 999)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}",
            f"{rng.randint(1, 999)}.{rng.randint(0, 999):03d}.{rng.randint(0, 999):03d},{rng.randint(0, 99):02d} €",
            f"EUR {rng.randint(1, 999)} {rng.randint(0, 999):03d} {rng.randint(0, 999):03d}",
            f"Order {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(100, 999)}",
            f"ORD-{y}-{rng.randint(0, 999999):06d}", f"#{rng.randint(10**6, 10**9)}",
            f"Invoice {rng.randint(10**7, 10**10)}", f"{rng.randint(1_600_000_000, 1_800_000_000)}",
            f"{y}{m:02d}{d:02d}{hh:02d}{mm:02d}{ss:02d}",
        ]))
    return out


def notes(n_per_locale: int, seed: int = 0, locales: tuple[str, ...] = LOCALES) -> list[Note]:
    """Free-text notes with a name and an address or phone each, spans labelled."""
    out = []
    for li, locale in enumerate(locales):
        f = _faker(locale, seed + li)
        rng = random.Random(seed * 1000 + li)
        for _ in range(n_per_locale):
            frame = rng.choice(_FRAMES[locale])
            values = {"name": f.name(), "address": f.address().replace("\n", ", "), "phone": f.phone_number()}
            text, spans = "", []
            rest = frame
            while "{" in rest:
                before, _, tail = rest.partition("{")
                key, _, rest = tail.partition("}")
                text += before
                entity = {"name": "PERSON", "address": "LOCATION", "phone": "PHONE_NUMBER"}[key]
                spans.append((entity, len(text), len(text) + len(values[key])))
                text += values[key]
            out.append(Note(text + rest, locale, spans))
    return out


def score(notes_: list[Note], found: dict[int, list[tuple[str, int, int]]], entity: str) -> tuple[int, int, int]:
    """``(true positives, false positives, false negatives)`` of ``entity`` over the notes.

    A labelled span is found when a detection of the same entity covers at least half of it; a
    detection is a false positive when it overlaps no labelled span of its entity.
    """
    tp = fp = fn = 0
    for i, note in enumerate(notes_):
        dets = [(a, b) for e, a, b in found.get(i, []) if e == entity]
        labels = [(a, b) for e, a, b in note.spans if e == entity]
        for a, b in labels:
            best = max(dets, key=lambda s: min(b, s[1]) - max(a, s[0]), default=(0, 0))
            covered = min(b, best[1]) - max(a, best[0])
            # a name found without its titles ("Univ.Prof. Leo Pohl B.A.") is found
            whole_name = entity == "PERSON" and covered > 0 and " " in note.text[max(a, best[0]):min(b, best[1])]
            if covered >= (b - a) / 2 or whole_name:
                tp += 1
            else:
                fn += 1
        for c, d in dets:
            if not any(min(b, d) > max(a, c) for a, b in labels):
                fp += 1
    return tp, fp, fn
