-- The assignment Dial's benchmark policy makes, written as a team would by hand in Envoy's Lua
-- filter: the same rules, the same murmur3 x86_32 of "<release>:<key>", the same buckets, so
-- it sends every user where Dial does (make bench checks that).
local bit = require("bit")
local band, bor, bxor, rol, rshift, lshift, tobit = bit.band, bit.bor, bit.bxor, bit.rol, bit.rshift, bit.lshift, bit.tobit
local byte, gmatch, match, sub = string.byte, string.gmatch, string.match, string.sub

-- 32-bit multiply, exact: LuaJIT numbers are doubles.
local function mul32(a, b)
  local alo, ahi = band(a, 0xffff), rshift(a, 16)
  local blo, bhi = band(b, 0xffff), rshift(b, 16)
  return tobit(alo * blo + tobit((ahi * blo + alo * bhi) * 65536))
end

local C1, C2 = tobit(0xcc9e2d51), tobit(0x1b873593)
local function mix(k)
  return mul32(rol(mul32(k, C1), 15), C2)
end

local function murmur3(s)
  local h, len = 0, #s
  local blocks = len - len % 4
  for i = 1, blocks, 4 do
    local b1, b2, b3, b4 = byte(s, i, i + 3)
    h = bxor(h, mix(bor(b1, lshift(b2, 8), lshift(b3, 16), lshift(b4, 24))))
    h = tobit(mul32(rol(h, 13), 5) + tobit(0xe6546b64))
  end
  local rest = len % 4
  if rest > 0 then
    local k = 0
    if rest >= 3 then k = bxor(k, lshift(byte(s, blocks + 3), 16)) end
    if rest >= 2 then k = bxor(k, lshift(byte(s, blocks + 2), 8)) end
    k = bxor(k, byte(s, blocks + 1))
    h = bxor(h, mix(k))
  end
  h = bxor(h, len)
  h = mul32(bxor(h, rshift(h, 16)), tobit(0x85ebca6b))
  h = mul32(bxor(h, rshift(h, 13)), tobit(0xc2b2ae35))
  h = bxor(h, rshift(h, 16))
  if h < 0 then h = h + 4294967296 end
  return h
end

local function cookie(header, name)
  if not header then return nil end
  for pair in gmatch(header, "[^;]+") do
    local k, v = match(pair, "^%s*([^=]-)%s*=%s*(.-)%s*$")
    if k == name then return (match(v, '^"(.*)"$') or v) end
  end
  return nil
end

local vips = {}
for i = 0, 9999 do vips["vip-" .. i] = true end

local function assign(headers, path)
  if sub(path, 1, 9) == "/checkout" then
    local c = headers:get("cookie")
    local key = headers:get("x-user-id")
    if key == nil or key == "" then key = cookie(c, "uid") end
    local group = headers:get("x-group")
    local subset
    if headers:get("x-beta") == "true" then subset = "canary"
    elseif group == "qa" or group == "staff" then subset = "canary"
    elseif cookie(c, "beta") == "1" then subset = "canary"
    elseif (cookie(c, "plan") or ""):sub(1, 11) == "enterprise-" then subset = "stable"
    elseif key and vips[key] then subset = "canary"
    elseif key then
      subset = (math.floor(murmur3("checkout:" .. key) * 100 / 4294967296) < 90) and "stable" or "canary"
    else
      subset = "stable"
    end
    local mirror = key and murmur3("checkout#mirror:" .. key) < 42949673
    return subset, (subset == "canary") and "v2" or "v1", mirror
  elseif sub(path, 1, 7) == "/search" then
    local key = headers:get("x-user-id")
    if not key then return "ranker-a", "r1", false end
    local b = math.floor(murmur3("search:" .. key) * 100 / 4294967296)
    if b < 50 then return "ranker-a", "r1", false end
    return "ranker-b", "r2", false
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  headers:remove("x-dial-subset")
  headers:remove("x-dial-version")
  headers:remove("x-dial-mirror")
  local subset, version, mirror = assign(headers, headers:get(":path") or "/")
  if subset then
    headers:replace("x-dial-subset", subset)
    headers:replace("x-dial-version", version)
    if mirror then headers:replace("x-dial-mirror", "v3") end
  end
  handle:clearRouteCache()
end
