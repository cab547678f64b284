-- lint: 9 error parameter 'rooot' is not declared in runbook{ params = ... }: did you mean 'p.root'?
runbook {
  name = "bad",
  version = "1.0.0",
  params = { root = { type = "path", default = "/tmp/app" } },
}

step("Look", function(p)
  log.info(p.rooot)
end)
