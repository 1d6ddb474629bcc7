"""From the user's data to the modelling dataset: raw tables through the metric catalogue
(`sources`, `metric_sql`, `labels`, `raw`), or a snapshot table the user already has (`snapshot`,
read with `readers`, which scoring replays column by column)."""
