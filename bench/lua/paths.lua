-- GET each path of a file in turn (one path per line): every request hits a different resource.
-- Usage: wrk -s paths.lua URL -- PATHS_FILE   (headers such as Authorization come from -H).
local paths = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  -- Threads start at different offsets so they do not walk the list in lockstep.
  i = math.random(#paths)
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
