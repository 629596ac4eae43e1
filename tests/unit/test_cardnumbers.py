import pytest

from symfhir.cardnumbers import find_card_numbers, has_card_number, luhn_valid, mask_card_numbers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "card 4111 1111 1111 1111 exp 12/29",
        "5500-0000-0000-0004",
        "amex 378282246310005.",
        "4222222222222",  # 13 digits
        "6011000990139424",
    ],
)
def test_finds_luhn_valid_card_numbers(text):
    assert has_card_number(text)
    masked, count = mask_card_numbers(text)
    assert count == 1
    assert "[card number removed]" in masked
    assert not has_card_number(masked)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "call (337) 555-0123",  # a phone number
        "lot 123456789012",  # 12 digits
        "12345678901234567890",  # 20 digits
        "botox 20 units on 2026-03-01",
        "",
    ],
)
def test_leaves_other_numbers_alone(text):
    assert not has_card_number(text)
    assert mask_card_numbers(text) == (text, 0)


def test_luhn():
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_spans_point_at_each_number():
    text = "a 4111111111111111 b 5500000000000004"
    spans = find_card_numbers(text)
    assert [text[s:e] for s, e in spans] == ["4111111111111111", "5500000000000004"]


def test_log_records_are_masked_whatever_the_logger(caplog):
    import logging

    from symfhir.cardnumbers import mask_log_records

    previous = logging.getLogRecordFactory()
    try:
        mask_log_records()
        mask_log_records()  # idempotent: one wrapper, not two
        log = logging.getLogger("symfhir.some.module")
        with caplog.at_level(logging.INFO):
            log.info("server said: %s", "card 4111 1111 1111 1111 refused")
            log.warning("plain %d", 42)
        first, second = caplog.records
        assert "4111" not in first.getMessage() and "[card number removed]" in first.message
        assert second.getMessage() == "plain 42"
        assert "4111" not in caplog.text
    finally:
        logging.setLogRecordFactory(previous)
