"""The head's observed state for the state API, the dashboard and the metrics (issue 11).

``store`` keeps what workers, drivers and agents report (bounded); ``rows`` turns it and the head's own
tables into Ray's state API rows; ``query`` filters and truncates them; ``routes``, ``logs`` and ``metrics``
serve them over HTTP.
"""
