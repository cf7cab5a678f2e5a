"""The gap planner: which spans of a date range a backfill requests (pure unit tests)."""

from datetime import date, timedelta

import pytest

from etl.pipeline.plan import Budget, Evidence, Span, budgets, empty_days, plan_spans

TODAY = date(2024, 6, 14)   # a Friday


def d(text: str) -> date:
    return date.fromisoformat(text)


def span(a: str, b: str) -> Span:
    return Span(d(a), d(b))


def plan(start: str, end: str, covered=(), *, lookback: int = 3, **options) -> list[Span]:
    return plan_spans(d(start), d(end), list(covered), today=TODAY, lookback_days=lookback, **options)


def test_nothing_covered_requests_the_whole_range_once():
    assert plan("2024-01-01", "2024-03-31") == [span("2024-01-01", "2024-03-31")]


def test_a_fully_covered_final_range_requests_nothing():
    assert plan("2024-01-01", "2024-03-31", [span("2023-12-01", "2024-04-30")]) == []


def test_extending_the_end_requests_only_the_new_days():
    assert plan("2024-01-01", "2024-04-07", [span("2024-01-01", "2024-03-31")]) == [span("2024-04-01", "2024-04-07")]


def test_extending_the_start_requests_only_the_earlier_days():
    assert plan("2023-12-01", "2024-03-31", [span("2024-01-01", "2024-03-31")]) == [span("2023-12-01", "2023-12-31")]


def test_a_hole_in_the_middle_becomes_its_own_span():
    covered = [span("2024-01-01", "2024-02-13"), span("2024-02-15", "2024-03-31")]
    assert plan("2024-01-01", "2024-03-31", covered) == [span("2024-02-14", "2024-02-14")]


def test_several_holes_give_one_span_each_in_order():
    covered = [span("2024-03-10", "2024-03-31"), span("2024-01-01", "2024-01-09"), span("2024-01-12", "2024-03-05")]
    assert plan("2024-01-01", "2024-03-31", covered) == [span("2024-01-10", "2024-01-11"),
                                                          span("2024-03-06", "2024-03-09")]


def test_overlapping_and_duplicate_covered_blocks_are_merged():
    covered = [span("2024-01-01", "2024-01-20"), span("2024-01-10", "2024-01-31"), span("2024-01-10", "2024-01-31")]
    assert plan("2024-01-01", "2024-02-05", covered) == [span("2024-02-01", "2024-02-05")]


def test_the_lookback_window_is_always_rechecked_even_when_covered():
    covered = [span("2024-06-01", "2024-06-14")]
    assert plan("2024-06-01", "2024-06-14", covered, lookback=3) == [span("2024-06-11", "2024-06-14")]


def test_lookback_zero_rechecks_only_today():
    covered = [span("2024-06-01", "2024-06-14")]
    assert plan("2024-06-01", "2024-06-14", covered, lookback=0) == [span("2024-06-14", "2024-06-14")]


def test_a_gap_touching_the_lookback_window_is_one_span():
    covered = [span("2024-06-01", "2024-06-07")]
    assert plan("2024-06-01", "2024-06-14", covered, lookback=3) == [span("2024-06-08", "2024-06-14")]


def test_days_after_today_are_never_requested():
    assert plan("2024-06-10", "2024-07-31", lookback=0) == [span("2024-06-10", "2024-06-14")]


def test_a_range_entirely_in_the_future_requests_nothing():
    assert plan("2024-07-01", "2024-07-31") == []


def test_full_refresh_requests_everything_despite_coverage():
    assert plan("2024-01-01", "2024-03-31", [span("2024-01-01", "2024-03-31")], full_refresh=True) == \
        [span("2024-01-01", "2024-03-31")]


def test_days_deeper_than_the_provider_serves_are_left_out():
    assert plan("2020-01-01", "2024-06-14", max_history_days=365, lookback=0) == \
        [Span(TODAY - timedelta(days=364), TODAY)]


def test_coverage_outside_the_range_does_not_matter():
    covered = [span("2023-01-01", "2023-12-31"), span("2024-05-01", "2024-05-31")]
    assert plan("2024-01-01", "2024-03-31", covered) == [span("2024-01-01", "2024-03-31")]


def test_a_single_day_range_covered_requests_nothing():
    assert plan("2024-02-14", "2024-02-14", [span("2024-02-14", "2024-02-14")]) == []


WEEKDAYS = [d("2024-01-01") + timedelta(days=i) for i in range(14) if (d("2024-01-01") + timedelta(days=i)).weekday() < 5]


def test_days_between_two_bars_of_the_answer_are_empty():
    answered = Evidence(answered=(d("2024-01-01"), d("2024-01-12")))
    assert empty_days(span("2024-01-01", "2024-01-14"), WEEKDAYS, today=TODAY, lookback_days=3,
                      evidence=answered) == [d("2024-01-06"), d("2024-01-07")]


def test_days_after_the_last_bar_are_empty_only_next_to_a_stored_row():
    answered = Evidence(answered=(d("2024-01-01"), d("2024-01-12")), stored_after=True)
    assert empty_days(span("2024-01-01", "2024-01-14"), WEEKDAYS, today=TODAY, lookback_days=3,
                      evidence=answered) == [d("2024-01-06"), d("2024-01-07"), d("2024-01-13"), d("2024-01-14")]


def test_days_before_the_first_bar_are_empty_only_next_to_a_stored_row_or_before_the_listing():
    days = [day for day in WEEKDAYS if day >= d("2024-01-08")]
    assert empty_days(span("2024-01-01", "2024-01-10"), days, today=TODAY, lookback_days=3,
                      evidence=Evidence(answered=(d("2024-01-08"), d("2024-01-10")))) == []
    assert empty_days(span("2024-01-01", "2024-01-10"), days, today=TODAY, lookback_days=3,
                      evidence=Evidence(answered=(d("2024-01-08"), d("2024-01-10")), stored_before=True)) == \
        [d("2024-01-01") + timedelta(days=i) for i in range(7)]
    assert empty_days(span("2024-01-01", "2024-01-10"), days, today=TODAY, lookback_days=3,
                      evidence=Evidence(answered=(d("2024-01-08"), d("2024-01-10")), listed_from=d("2024-01-03"))) \
        == [d("2024-01-01"), d("2024-01-02")]


def test_an_answer_without_bars_proves_no_day_empty_but_those_before_the_listing():
    assert empty_days(span("2024-01-01", "2024-01-14"), [], today=TODAY, lookback_days=3,
                      evidence=Evidence(stored_before=True, stored_after=True)) == []
    assert empty_days(span("2024-01-01", "2024-01-14"), [], today=TODAY, lookback_days=3,
                      evidence=Evidence(listed_from=d("2024-01-03"))) == [d("2024-01-01"), d("2024-01-02")]


def test_empty_days_inside_the_lookback_window_are_not_final():
    assert empty_days(span("2024-06-08", "2024-06-14"), [], today=TODAY, lookback_days=3,
                      evidence=Evidence(answered=(d("2024-06-01"), d("2024-06-14")))) == \
        [d("2024-06-08"), d("2024-06-09"), d("2024-06-10")]


def test_a_span_cannot_end_before_it_starts():
    with pytest.raises(ValueError):
        span("2024-01-02", "2024-01-01")


def test_span_counts_days_inclusively():
    assert span("2024-01-01", "2024-01-31").days == 31


def test_budget_compares_requests_with_minute_and_daily_limits():
    (budget,) = budgets({"alphavantage": 60}, {"alphavantage": (5, 25)})
    assert (budget.minutes, budget.days) == (12, 3)
    assert "needs 3 days" in budget.describe()


def test_budget_without_limits_says_so():
    assert Budget("yahoo", 10, None, None).describe() == \
        "yahoo: 10 request(s); no per-minute limit; no daily limit"


def test_requests_are_widened_by_a_week_each_side_within_the_providers_reach_and_today_but_not_for_crypto():
    from etl.pipeline.plan import widened

    assert widened("STOCK", d("2024-03-04"), d("2024-03-10"), None, TODAY) == (d("2024-02-26"), d("2024-03-17"))
    assert widened("FOREX", d("2024-06-05"), d("2024-06-12"), d("2024-06-01"), TODAY) == (d("2024-06-01"), TODAY)
    assert widened("CRYPTO", d("2024-03-04"), d("2024-03-10"), None, TODAY) == (d("2024-03-04"), d("2024-03-10"))
