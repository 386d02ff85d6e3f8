-- POST one body read from a file (a transaction Bundle) as application/fhir+json.
-- Usage: wrk -s post.lua URL -- BODY_FILE   (Authorization comes from -H).
local body
local headers = {}

function init(args)
  local file = assert(io.open(args[1], "rb"))
  body = file:read("*a")
  file:close()
  -- wrk.format only adds Host to an explicit header table: copy the -H headers in ourselves.
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Content-Type"] = "application/fhir+json"
  headers["Prefer"] = "return=minimal"
end

function request()
  return wrk.format("POST", nil, headers, body)
end
