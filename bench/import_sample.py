"""The import examples under data/examples/, written with a fixed seed (run it, commit the files).

    python bench/import_sample.py [--to data/examples]

- `customers_template.csv`, `visits_template.csv`: the generic template, a few rows (UTF-8,
  commas; exactly the columns `carebot export` writes).
- `yclients_customers.csv` (1,000 customers) and `yclients_visits.csv` (5,000 visits): in the
  shape of a YCLIENTS export saved by Excel (Windows-1251, semicolons, Russian dates, amounts
  with decimal commas), with the mistakes real files have, each a known number of times
  (`MISTAKES`): numbers that are not phones, the same customer twice, impossible and
  unreadable birthdays, a visit on 31.02, empty amounts, services and masters the business does
  not know, visits that did not take place or are still ahead, the same visit twice.
tests/unit/test_import_sample.py checks that the committed files are what this writes, and
that importing them gives exactly the report these numbers predict.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 2026
CUSTOMERS = 1000
VISITS = 5000
# how many of each mistake the YCLIENTS-shaped files carry
MISTAKES = {
    "customers": {"bad_phone": 12, "no_phone": 5, "duplicate": 20, "bad_birthday": 9},
    "visits": {
        "bad_phone": 10,
        "bad_date": 8,  # 31.02, 30.02 and "вчера"
        "future_date": 15,  # still ahead: "Ожидание клиента"
        "not_attended": 25,  # "Клиент не пришел"
        "unknown_service": 30,
        "unknown_master": 40,  # kept, without a master
        "no_amount": 60,  # kept, at the service's price
        "duplicate": 12,  # the same visit twice
        "new_customer": 7,  # a phone no customer row has: the customer is created
    },
}
FIRST_NAMES = (
    "Анна", "Мария", "Елена", "Ольга", "Наталья", "Ирина", "Светлана", "Татьяна", "Юлия",
    "Екатерина", "Дарья", "Ксения", "Алина", "Виктория", "Полина", "Софья", "Вера", "Людмила",
)  # fmt: skip
LAST_NAMES = (
    "Иванова", "Смирнова", "Кузнецова", "Попова", "Васильева", "Петрова", "Соколова",
    "Михайлова", "Новикова", "Фёдорова", "Морозова", "Волкова", "Алексеева", "Лебедева",
)  # fmt: skip
MONTHS = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
          "сентября", "октября", "ноября", "декабря")  # fmt: skip
SERVICES = ("Маникюр с покрытием", "Маникюр", "маникюр гель-лак", "Педикюр", "ПЕДИКЮР")
UNKNOWN_SERVICES = ("Стрижка женская", "Маникюр + дизайн", "Брови")
MASTERS = ("Анна", "Ольга", "Анна К.", "ольга")
UNKNOWN_MASTERS = ("Мария", "Светлана (стажёр)")
BAD_PHONES = ("12345", "+7 916 12", "нет", "8 (800) 00", "0000000000", "89")
FIRST_VISIT = date(2024, 1, 8)
LAST_VISIT = date(2026, 11, 20)  # the tests' "now" is 2026-11-23


def _phone_text(rng: random.Random, digits: str) -> str:
    """One of the ways a Russian mobile number is written (digits: the 10 after +7)."""
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return rng.choice(
        (
            f"+7{digits}",
            f"8{digits}",
            f"7{digits}",
            f"+7 ({a}) {b}-{c}-{d}",
            f"8 {a} {b}-{c}-{d}",
            f"8-{a}-{b}-{c}-{d}",
            f"+7 {a} {b} {c} {d}",
        )
    )


def _birthday_text(rng: random.Random, day: date) -> str:
    form = rng.randrange(10)
    if form < 6:
        return day.strftime("%d.%m.%Y")
    if form == 6:
        return day.strftime("%d.%m.%y")
    if form == 7:
        return f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    if form == 8:
        return day.strftime("%d.%m")  # no year
    return day.isoformat()


def _amount_text(rng: random.Random, rubles: int) -> str:
    return rng.choice((f"{rubles}", f"{rubles:,}".replace(",", " ") + ",00", f"{rubles},00",
                       f"{rubles} руб."))  # fmt: skip


def yclients(seed: int = SEED) -> tuple[bytes, bytes]:
    """The two YCLIENTS-shaped files, as cp1251 bytes."""
    rng = random.Random(seed)
    people = []  # (name, digits)
    used: set[str] = set()
    while len(people) < CUSTOMERS:
        digits = "9" + "".join(rng.choice("0123456789") for _ in range(9))
        if digits in used:
            continue
        used.add(digits)
        people.append((f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", digits))
    mistakes = MISTAKES["customers"]
    rows: list[list[str]] = []
    kinds = (
        ["bad_phone"] * mistakes["bad_phone"]
        + ["no_phone"] * mistakes["no_phone"]
        + ["bad_birthday"] * mistakes["bad_birthday"]
    )
    kinds += ["good"] * (CUSTOMERS - len(kinds))
    rng.shuffle(kinds)
    for (name, digits), kind in zip(people, kinds, strict=True):
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(16000))
        phone = _phone_text(rng, digits)
        if kind == "bad_phone":
            phone = rng.choice(BAD_PHONES)
        elif kind == "no_phone":
            phone = ""
        elif rng.random() < 0.03:  # two numbers in one cell: the first one counts
            phone = f"{phone}, 8 903 {rng.randrange(100, 999)}-{rng.randrange(10, 99)}-11"
        birthday = _birthday_text(rng, born) if rng.random() < 0.6 else ""
        if kind == "bad_birthday":
            birthday = rng.choice(("31.02.1985", "00.00.0000", "32.13.1990", "весной"))
        rows.append(
            [
                name if rng.random() > 0.02 else "",
                phone,
                rng.choice(("", "", "", f"c{len(rows)}@example.ru")),
                birthday,
                rng.choice(("Женский", "Женский", "", "Мужской")),
                rng.choice(("", "", "Постоянный", "VIP")),
                str(rng.randrange(0, 40)),
                f"{rng.randrange(0, 90000)},00",
                rng.choice(("", "", "", "", "аллергия на гель", "любит красный", "только к Анне")),
            ]
        )
    good = [i for i, kind in enumerate(kinds) if kind == "good"]
    for index in rng.sample(good, mistakes["duplicate"]):  # the same person again, spelt otherwise
        name, digits = people[index]
        rows.append(
            [name.split()[0], _phone_text(rng, digits), "", "", "", "", "1", "0,00", "повтор"]
        )
    customers = io.StringIO()
    writer = csv.writer(customers, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Имя", "Телефон", "Email", "Дата рождения", "Пол", "Категории", "Визиты",
                     "Продано, руб.", "Комментарий"])  # fmt: skip
    writer.writerows(rows)
    customers.write("\r\n;;;;;;;;\r\n")  # Excel's empty rows at the end

    phones = {digits: name for (name, digits), kind in zip(people, kinds, strict=True)}
    reachable = [people[i] for i in good]
    mistakes = MISTAKES["visits"]
    kinds = [k for k, n in mistakes.items() if k != "duplicate" for _ in range(n)]
    kinds += ["good"] * (VISITS - mistakes["duplicate"] - len(kinds))
    rng.shuffle(kinds)
    visits: list[list[str]] = []
    taken: set[tuple[str, date, str]] = set()
    newcomers = iter(
        ("9" + "".join(rng.choice("0123456789") for _ in range(9)), f"Новая Клиентка {n}")
        for n in range(100)
    )
    for kind in kinds:
        name, digits = rng.choice(reachable)
        if kind == "new_customer":
            while True:
                digits, name = next(newcomers)
                if digits not in phones:
                    break
        service = rng.choice(SERVICES)
        canonical = "manicure" if "аник" in service.lower() else "pedicure"
        while True:  # one visit per person, day and service (else it would be a duplicate)
            day = FIRST_VISIT + timedelta(days=rng.randrange((LAST_VISIT - FIRST_VISIT).days))
            if (digits, day, canonical) not in taken:
                taken.add((digits, day, canonical))
                break
        day_text = day.strftime("%d.%m.%Y")
        status = "Клиент пришел"
        master = rng.choice(MASTERS)
        amount = _amount_text(rng, 1800 + 100 * rng.randrange(20))
        phone = _phone_text(rng, digits)
        if kind == "bad_phone":
            phone = rng.choice(BAD_PHONES)
        elif kind == "bad_date":
            day_text = rng.choice(("31.02.2025", "30.02.2026", "вчера"))
        elif kind == "future_date":
            day_text = (LAST_VISIT + timedelta(days=10 + rng.randrange(30))).strftime("%d.%m.%Y")
            status = "Ожидание клиента"
        elif kind == "not_attended":
            status = "Клиент не пришел"
        elif kind == "unknown_service":
            service = rng.choice(UNKNOWN_SERVICES)
        elif kind == "unknown_master":
            master = rng.choice(UNKNOWN_MASTERS)
        elif kind == "no_amount":
            amount = ""
        visits.append(
            [day_text, f"{rng.randrange(10, 20)}:{rng.choice(('00', '30'))}", name, phone,
             service, master, amount, status]
        )  # fmt: skip
    good_visits = [row for row, kind in zip(visits, kinds, strict=True) if kind == "good"]
    for row in rng.sample(good_visits, mistakes["duplicate"]):
        again = list(row)
        again[1] = f"{rng.randrange(10, 20)}:15"  # entered twice, at another time of the day
        visits.insert(rng.randrange(len(visits)), again)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Дата", "Время", "Клиент", "Телефон", "Услуги", "Сотрудник",
                     "Стоимость, руб.", "Статус"])  # fmt: skip
    writer.writerows(visits)
    return customers.getvalue().encode("cp1251"), out.getvalue().encode("cp1251")


CUSTOMERS_TEMPLATE = """name,phone,birthday,notes,email
Анна Иванова,+79161234567,1990-03-14,любит красный,anna@example.ru
Мария Петрова,+79031112233,,,
Елена,+79257654321,1985-11-02,"аллергия на гель, только гипоаллергенное",
"""
VISITS_TEMPLATE = """date,phone,customer,service,master,amount
2026-09-01 10:30,+79161234567,Анна Иванова,manicure,anna,2000.00
2026-09-22 11:00,+79161234567,Анна Иванова,manicure,anna,2000.00
2026-10-05,+79031112233,Мария Петрова,pedicure,olga,2800.00
2026-10-12 16:00,+79257654321,Елена,manicure,,1800.00
"""


def files() -> dict[str, bytes]:
    customers, visits = yclients()
    return {
        "customers_template.csv": CUSTOMERS_TEMPLATE.encode(),
        "visits_template.csv": VISITS_TEMPLATE.encode(),
        "yclients_customers.csv": customers,
        "yclients_visits.csv": visits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=Path, default=ROOT / "data" / "examples")
    args = parser.parse_args()
    args.to.mkdir(parents=True, exist_ok=True)
    for name, data in files().items():
        (args.to / name).write_bytes(data)
        print(f"{args.to / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
