-- Time-of-day and day-of-week rates (docs/RATING.md): a tariff's periods, in the
-- tariff's time zone (every period of a tariff carries the same zone), and the cost per
-- minute of an entry in a period. An entry without a cost for a period keeps its own.
CREATE TABLE rate_periods (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rates_id   BIGINT NOT NULL REFERENCES rates (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    days       INTEGER NOT NULL DEFAULT 0,   -- bit d: time.Weekday d (0 = Sunday)
    start_time INTEGER NOT NULL DEFAULT 0,   -- seconds of the local day
    end_time   INTEGER NOT NULL DEFAULT 86400,
    dates      TEXT NOT NULL DEFAULT '',     -- holidays: YYYY-MM-DD,...
    timezone   TEXT NOT NULL DEFAULT 'UTC',
    UNIQUE (rates_id, name)
);

CREATE TABLE rate_period_costs (
    period_id    BIGINT NOT NULL REFERENCES rate_periods (id) ON DELETE CASCADE,
    rates_id     BIGINT NOT NULL,
    direction_id BIGINT NOT NULL,
    priority     INTEGER NOT NULL,
    cost         BIGINT NOT NULL CHECK (cost >= 0), -- per minute
    PRIMARY KEY (period_id, direction_id, priority),
    FOREIGN KEY (rates_id, direction_id, priority) REFERENCES rate_entries (rates_id, direction_id, priority)
        ON DELETE CASCADE ON UPDATE CASCADE
);
