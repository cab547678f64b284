-- test: n=-inf and n=1e400 for an int and a number parameter
-- expect: exit=2 within=4s
-- args: -p n=-inf -p y=1e400

runbook { name = "param-minus-inf-int", version = "1.0.0",
          params = { n = { type = "int" }, y = { type = "number" } } }
step("reached", function() error("accepted") end)
