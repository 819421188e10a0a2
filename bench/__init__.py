"""`make bench`, `make chaos`, `make fuzz`: BillingOS's figures and guarantees, measured.

Layout: `stats` (percentiles, rates), `results` (the figure rows and the files they are written
to), `plots`, `procs` (processes the harness starts and always kills), `loadgen` and `wsclient`
(the load generators, run as their own processes), `stack` (the Procfile stack on free ports),
`figures/` (one module per row of the table), `run` (`make bench`), `chaos` (`make chaos`),
`fuzz` (`make fuzz`).
"""
