-- One wrk scenario, chosen by the SCENARIO environment variable. (user, task) pairs come from
-- IDS_FILE and search terms from TERMS_FILE (most common first), both written by bench/run.py.
-- Deletes take tasks from the end of IDS_FILE, which no other request picks; each thread has its
-- own slice of them. Complete all and clear completed go to users no id belongs to.
local scenario = os.getenv("SCENARIO")
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  local user, id = line:match("^(%S+) (%S+)$")
  ids[#ids + 1] = { user, id }
end
local terms = {}
for line in io.lines(os.getenv("TERMS_FILE")) do
  terms[#terms + 1] = line
end
local deletable = tonumber(os.getenv("DELETABLE"))  -- the last ids, kept for deletes
local bulk_users = tonumber(os.getenv("BULK_USERS"))
local picked = #ids - deletable
local next_thread = 0
local cursor = 0
local counter = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  math.randomseed(42 + thread_index)
  local slice = math.floor(deletable / 2)
  cursor = picked + tonumber(os.getenv("DELETE_OFFSET") or "0") % slice + thread_index * slice
end

local function pick()
  local pair = ids[math.random(picked)]
  return pair[1], pair[2]
end

-- Zipf's law, roughly: the term of rank r drawn with probability about 1/r.
local function term()
  return terms[math.floor((#terms) ^ math.random())]
end

local json = { ["Content-Type"] = "application/json" }

local function get_one()
  local user, id = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks/" .. id)
end

-- The first page of a list, as a todo frontend shows it: all, open or completed.
local function list()
  local user = pick()
  local filter = ({ "", "", "&completed=false", "&completed=true" })[math.random(4)]
  return wrk.format("GET", "/users/" .. user .. "/tasks?limit=50" .. filter)
end

local function counts()
  local user = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks/counts")
end

local function create()
  local user = pick()
  counter = counter + 1
  return wrk.format("POST", "/users/" .. user .. "/tasks", json,
    '{"title":"Buy ' .. term() .. '","description":"before ' .. term() .. '"}')
end

local function patch()
  local user, id = pick()
  counter = counter + 1
  return wrk.format("PATCH", "/users/" .. user .. "/tasks/" .. id, json,
    '{"title":"Call ' .. term() .. ' ' .. counter .. '"}')
end

local function toggle()
  local user, id = pick()
  return wrk.format("PATCH", "/users/" .. user .. "/tasks/" .. id .. "/complete")
end

local function delete()
  cursor = cursor + 1
  local pair = ids[cursor]
  return wrk.format("DELETE", "/users/" .. pair[1] .. "/tasks/" .. pair[2])
end

local function search()
  local user = pick()
  return wrk.format("GET", "/users/" .. user .. "/tasks?limit=50&q=" .. term())
end

local function bulk_user()
  return string.format("bulk-%03d", math.random(bulk_users))
end

local function complete_all()
  local state = math.random(2) == 1 and "true" or "false"
  return wrk.format("PATCH", "/users/" .. bulk_user() .. "/tasks", json,
    '{"is_completed":' .. state .. '}')
end

local function clear_completed()
  return wrk.format("DELETE", "/users/" .. bulk_user() .. "/tasks?completed=true")
end

-- What a todo frontend sends: mostly lists, gets and counts; creates, patches, toggles and
-- deletes; some searches; now and then complete all or clear completed.
local function mixed()
  local roll = math.random(1000)
  if roll <= 350 then return list() end
  if roll <= 600 then return get_one() end
  if roll <= 700 then return counts() end
  if roll <= 780 then return create() end
  if roll <= 860 then return patch() end
  if roll <= 920 then return toggle() end
  if roll <= 950 then return delete() end
  if roll <= 990 then return search() end
  if roll <= 995 then return complete_all() end
  return clear_completed()
end

-- One user's flood of one operation, the dearest they can send (bench/flood.py): as fast as its
-- connections go, answered 429 beyond the user's budget.
local function flood_search()
  return wrk.format("GET", "/users/crafted-10k/tasks?limit=50&q=milk")
end

local function flood_page()
  return wrk.format("GET", "/users/crafted-10k/tasks?limit=1000")
end

local function flood_bulk()
  local state = math.random(2) == 1 and "true" or "false"
  return wrk.format("PATCH", "/users/lone-10k/tasks", json, '{"is_completed":' .. state .. '}')
end

local function flood_create()
  counter = counter + 1
  return wrk.format("POST", "/users/flood-user/tasks", json,
    '{"title":"Flood ' .. counter .. '","description":"' .. string.rep("x", 1000) .. '"}')
end

local generators = {
  mixed = mixed,
  get_one = get_one,
  list = list,
  counts = counts,
  create = create,
  patch = patch,
  toggle = toggle,
  delete = delete,
  search = search,
  flood_search = flood_search,
  flood_page = flood_page,
  flood_bulk = flood_bulk,
  flood_create = flood_create,
}

request = generators[scenario]
if request == nil then
  error("no such scenario: " .. tostring(scenario))
end

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
