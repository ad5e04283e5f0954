-- One wrk scenario, chosen by the SCENARIO environment variable; (user, task) pairs come from
-- IDS_FILE, which bench/run.py writes. Each thread gets its own slice of ids for deletes.
local scenario = os.getenv("SCENARIO")
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  local user, id = line:match("^(%S+) (%S+)$")
  ids[#ids + 1] = { user, id }
end
local next_thread = 0
local cursor = 0
local counter = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  math.randomseed(42 + thread_index)
  cursor = tonumber(os.getenv("DELETE_OFFSET") or "0") + thread_index * 50000
end

local function pick()
  local pair = ids[math.random(#ids)]
  return pair[1], pair[2]
end

local json = { ["Content-Type"] = "application/json" }

local function get_one()
  local user, id = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks/" .. id)
end

local function list(limit)
  local user = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks?limit=" .. limit)
end

local function create()
  local user = pick()
  counter = counter + 1
  return wrk.format("POST", "/users/" .. user .. "/tasks", json,
    '{"title":"bench task ' .. counter .. '","description":"made under load"}')
end

local function create_keyed()
  local user = pick()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. thread_index .. "-" .. counter,
  }
  return wrk.format("POST", "/users/" .. user .. "/tasks", headers,
    '{"title":"bench task ' .. counter .. '","description":"made under load"}')
end

-- Each task of its slice once, with the entity tag every loaded task starts with.
local function patch_if_match()
  cursor = cursor + 1
  local pair = ids[cursor]
  counter = counter + 1
  local headers = { ["Content-Type"] = "application/json", ["If-Match"] = '"1"' }
  return wrk.format("PATCH", "/users/" .. pair[1] .. "/tasks/" .. pair[2], headers,
    '{"title":"renamed ' .. counter .. '"}')
end

local function patch()
  local user, id = pick()
  counter = counter + 1
  return wrk.format("PATCH", "/users/" .. user .. "/tasks/" .. id, json,
    '{"title":"renamed ' .. counter .. '"}')
end

local function toggle()
  local user, id = pick()
  return wrk.format("PATCH", "/users/" .. user .. "/tasks/" .. id .. "/complete")
end

local function search()
  local user = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks?limit=100&q=task%20" .. math.random(999))
end

local function counts()
  local user = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks/counts")
end

local function complete_all()
  local user = pick()
  local state = math.random(2) == 1 and "true" or "false"
  return wrk.format("PATCH", "/users/" .. user .. "/tasks", json, '{"is_completed":' .. state .. '}')
end

local function clear_completed()
  local user = pick()
  return wrk.format("DELETE", "/users/" .. user .. "/tasks?completed=true")
end

local function delete()
  cursor = cursor + 1
  local pair = ids[cursor]
  return wrk.format("DELETE", "/users/" .. pair[1] .. "/tasks/" .. pair[2])
end

local function mixed()
  local roll = math.random(100)
  if roll <= 60 then return get_one() end
  if roll <= 80 then return list(100) end
  if roll <= 87 then return create() end
  if roll <= 94 then return patch() end
  return toggle()
end

local generators = {
  get_one = get_one,
  list_100 = function() return list(100) end,
  list_1000 = function() return list(1000) end,
  create = create,
  create_keyed = create_keyed,
  patch_if_match = patch_if_match,
  patch = patch,
  toggle = toggle,
  delete = delete,
  mixed = mixed,
  search = search,
  counts = counts,
  complete_all = complete_all,
  clear_completed = clear_completed,
}

request = generators[scenario]

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, '
      .. '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, non2xx, errors))
end
