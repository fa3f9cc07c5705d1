# The two commands of the README. Everything else is in scripts/.
.PHONY: run test bench bench-pages bench-listening bench-import bench-shards soak repeat-tests setup up down status

run:    ## set-up, stores up, release build, serve on http://127.0.0.1:3000
	bash scripts/run.sh

test:   ## set-up, stores up, fmt, clippy x2, Rust tests, Playwright
	bash scripts/test.sh

bench:  ## sync benchmark: simulated users, simulator latency, real stores (numbers, not a test)
	bash scripts/bench.sh

bench-listening:  ## Listening panels through postgres_fdw: 2M plays, p50/p95 per query (numbers, not a test)
	bash scripts/bench-listening.sh

bench-import:  ## the import job on a 2,000,000-play export, imported twice (numbers, not a test)
	bash scripts/bench-import.sh

bench-shards:  ## the sharded analytics tier: 4M plays on two nodes; async scans, ingest, one page sharded vs one node (numbers, not a test)
	bash scripts/bench-shards.sh

bench-pages:  ## page benchmark: /dashboard, /history, /artist vs a static ceiling, release server (numbers, not a test)
	bash scripts/bench-pages.sh

soak:  ## soak with faults: listeners browse and sync while stores stop and Spotify misbehaves (numbers, not a test)
	bash scripts/soak.sh $(ARGS)

repeat-tests:  ## run the Rust tests N times (default 30) with a deadline; a hang dumps every thread
	bash scripts/repeat-tests.sh $(or $(N),30) $(TESTS)

setup:
	bash scripts/setup.sh
up:
	bash scripts/services.sh up
down:
	bash scripts/services.sh down
status:
	bash scripts/services.sh status
