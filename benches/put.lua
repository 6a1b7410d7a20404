-- wrk script of benches/load.sh: PUTs of real-shaped records spread over
-- many users and collections.
--
-- Syncto paces one user's writes to one collection (~11 ms apart, as the
-- Sync node refuses two in one 10 ms tick), so PUTs of a single user and
-- collection would only measure that pacing. Request n goes to user
-- n % USERS (key id in the bucket) and collection bench<(n / USERS) % COLLS>,
-- record id n: with the defaults, 1,024 (user, collection) pairs take turns.
--
-- Env: USERS (256), COLLS (4).

local users = tonumber(os.getenv("USERS") or "256")
local colls = tonumber(os.getenv("COLLS") or "4")
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
local body

function init(args)
  -- Threads start far apart so that they write to different users.
  n = (tid or 0) * 100003
  -- About 500 bytes, like a real Sync record: a JSON object serialized
  -- into the `payload` string.
  local ct = string.rep("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 10)
  local payload = '{\\"ciphertext\\":\\"' .. ct .. '\\",\\"IV\\":\\"AAAAAAAAAAAAAAAAAAAAAA==\\",\\"hmac\\":\\"'
    .. string.rep("0123456789abcdef", 4) .. '\\"}'
  body = '{"data":{"payload":"' .. payload .. '"}}'
end

function request()
  n = n + 1
  local user = n % users
  local coll = math.floor(n / users) % colls
  local kid = string.format("1234-%022d", user)
  local path = string.format("/v1/buckets/%s/collections/bench%d/records/r%d", kid, coll, n)
  return wrk.format("PUT", path, {
    ["Authorization"] = "Bearer bench-token",
    ["Content-Type"] = "application/json",
  }, body)
end

-- Every answer that is not 200/201 is counted: a benchmark of refusals is
-- not a benchmark of writes.
local bad = 0
function response(status, headers, body)
  if status ~= 200 and status ~= 201 then
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("put.lua: status " .. status .. ": " .. body:sub(1, 200) .. "\n")
    end
  end
end
