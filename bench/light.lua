-- wrk script of bench/run.sh's light-load runs: each connection waits
-- 2–6 ms (4 on average) before each request. wrk starts the clock when it
-- sends, so the wait is not latency.
delay = function() return math.random(2, 6) end
