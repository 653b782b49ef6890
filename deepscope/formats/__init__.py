"""The on-disk formats that pass from one stage to the next: datasets and pairs sets."""
