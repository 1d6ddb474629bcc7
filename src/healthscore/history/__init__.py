"""The score history: a DuckDB file of every recorded scoring run (`store`) and what it tells a
CSM (`changes`)."""
