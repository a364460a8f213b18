"""The paper as data: its tables and hyperparameters (`data/*.csv`, with SOURCES.md and NOTES.md), which
setting reproduces each printed row (`rows`), and exact parameter counts of those rows (`params`)."""
