"""The daemon's loops: submitter, poller, downloader, sweeper, and the runner that ticks them."""
