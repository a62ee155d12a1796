--[[ The response cache: an identical request to a model's production route
(same model, content type and body bytes) answered from a shared dictionary
without reaching TorchServe. Only models whose answers are a pure function of
the request are cached (model-config.yaml: twinserve.deterministic or cache),
only their production routes (staging is where a new version is tested: its
answers always come from TorchServe), and only 200s of the model's handler.

Never an old version's answer after a swap: every entry is keyed by the
model's generation, a counter the switch bumps after it changes the model's
colour (switch.lua), and by the colour. A request reads the generation before
it reads the colour, so an answer is stored under a generation no newer than
the colour that produced it: once a swap or a rollback has returned, every
answer of the old colour is unreachable, even one still in flight. Nginx's
start and reload bump every generation too.

An entry holds the request's own bytes, compared on a hit, so that two bodies
with the same digest can never share an answer. Entries over
cache_max_entry bytes are not stored; the dictionary evicts the least recently
used entries when full (counted). Every answer of a route says X-Cache: HIT,
MISS (asked TorchServe, stored if it could be) or BYPASS (not cacheable, or the
client asked for a fresh answer: a Cache-Control no-cache or no-store directive,
or Pragma: no-cache when there is no Cache-Control, RFC 9111 5.2.1 and 5.4; the
answer is not stored). Directives are tokens compared case-insensitively, in any
Cache-Control field of the request, never substrings of another directive. ]]

local M = {}

local cached = {}  -- model -> true when its production answers are cached
local cache        -- the entries
local switch_dict  -- holds "gen|<model>"
local counters     -- the metrics dictionary
local max_entry

function M.init(cfg)
    cache = ngx.shared[cfg.cache_dict]
    switch_dict = ngx.shared[cfg.dict]
    counters = ngx.shared[cfg.metrics_dict]
    max_entry = cfg.cache_max_entry
    cached = {}
    for _, model in ipairs(cfg.cached_models) do
        cached[model] = true
    end
    for _, model in ipairs(cfg.models) do  -- a reload may change what a colour serves: start afresh
        switch_dict:incr("gen|" .. model, 1, 0)
        -- Every counter a model can have exists from the start, at 0: a rate over it is 0, not "no data".
        local counted = cached[model] and { "hit", "miss", "bypass", "too_large", "no_memory", "evicted" }
            or { "bypass" }
        for _, what in ipairs(counted) do
            counters:incr("cache|" .. what .. "|" .. model, 0, 0)
        end
    end
end

-- After the switch changed a model's colour: its cached answers become unreachable.
function M.invalidate(model)
    switch_dict:incr("gen|" .. model, 1, 0)
end

local function count(what, model)
    counters:incr("cache|" .. what .. "|" .. model, 1, 0)
end

-- The directive names of Cache-Control (or Pragma) values, lower-cased: `No-Cache, max-age=0` -> {no-cache, max-age}.
local function directives(value, into)
    if type(value) == "table" then  -- the field sent more than once: one list (RFC 9110 5.3)
        for _, v in ipairs(value) do
            directives(v, into)
        end
        return into
    end
    for item in value:gmatch("[^,]+") do
        local name = item:match("^%s*([^=%s]+)")
        if name then
            into[name:lower()] = true
        end
    end
    return into
end

-- True when the request asks for an answer not taken from, nor kept in, a cache (RFC 9111 5.2.1, 5.4).
function M.fresh_asked(cache_control, pragma)
    if cache_control ~= nil then
        local d = directives(cache_control, {})
        return d["no-cache"] or d["no-store"] or false
    end
    return pragma ~= nil and directives(pragma, {})["no-cache"] or false
end

--[[ Rewrite phase, before the switch reads the colour: the generation this
request's answer belongs to (nil: the request is not cacheable). ]]
function M.begin(route, model)
    if route == "production" and cached[model] then
        local headers = ngx.req.get_headers()
        if M.fresh_asked(headers["cache-control"], headers["pragma"]) then
            return
        end
        ngx.ctx.cache_gen = switch_dict:get("gen|" .. model) or 0
    end
end

-- An entry: "<version>\n<content type>\n<request length>\n<request><answer>".
function M.encode(version, content_type, request, answer)
    return version .. "\n" .. content_type .. "\n" .. #request .. "\n" .. request .. answer
end

-- (version, content type, answer) of an entry made for `request`, or nil.
function M.decode(entry, request)
    local version, content_type, length, start = entry:match("^([^\n]*)\n([^\n]*)\n(%d+)\n()")
    if not version or tonumber(length) ~= #request then
        return nil
    end
    local stop = start + #request - 1
    if entry:sub(start, stop) ~= request then
        return nil
    end
    return version, content_type, entry:sub(stop + 1)
end

--[[ Access phase (after the rate limit): answers from the cache, or notes
what to store once TorchServe has answered. ]]
function M.lookup(model)
    local ctx = ngx.ctx
    if not ctx.cache_gen then
        count("bypass", model)
        return
    end
    ngx.req.read_body()
    local request = ngx.req.get_body_data()  -- nil: empty (the handler says why) or not in memory
    if not request then
        ctx.cache_gen = nil
        count("bypass", model)
        return
    end
    local key = model .. "|" .. ctx.cache_gen .. "|" .. ngx.var.colour .. "|" .. (ngx.var.content_type or "")
        .. "|" .. ngx.md5(request)
    local entry = cache:get(key)
    if entry then
        local version, content_type, answer = M.decode(entry, request)
        if version then
            count("hit", model)
            ngx.status = ngx.HTTP_OK
            ngx.header["Content-Type"] = content_type
            ngx.header["Content-Length"] = #answer
            ngx.header["X-Model-Version"] = version
            ngx.header["X-Cache"] = "HIT"
            ngx.print(answer)
            return ngx.exit(ngx.HTTP_OK)
        end
    end
    count("miss", model)
    ctx.cache_key, ctx.cache_request = key, request
end

-- Header filter of the route: says what the cache did; keeps the answer if it may be stored.
function M.header(model)
    local ctx = ngx.ctx
    if ngx.header["X-Cache"] == "HIT" then
        return
    end
    ngx.header["X-Cache"] = ctx.cache_key and "MISS" or "BYPASS"
    local version = ngx.var.upstream_http_x_model_version
    if ctx.cache_key and ngx.status == ngx.HTTP_OK and version then
        ctx.cache_version = version
        ctx.cache_type = ngx.header["Content-Type"] or ""
        ctx.cache_chunks, ctx.cache_size = {}, #ctx.cache_request + #version + 64
        ctx.cache_model = model
    end
end

-- Body filter of the route: gathers the answer, stores it at its end.
function M.body()
    local ctx = ngx.ctx
    local chunks = ctx.cache_chunks
    if not chunks then
        return
    end
    local chunk = ngx.arg[1]
    ctx.cache_size = ctx.cache_size + #chunk
    if ctx.cache_size > max_entry then
        ctx.cache_chunks = nil
        count("too_large", ctx.cache_model)
        return
    end
    chunks[#chunks + 1] = chunk
    if not ngx.arg[2] then
        return
    end
    ctx.cache_chunks = nil
    local entry = M.encode(ctx.cache_version, ctx.cache_type, ctx.cache_request, table.concat(chunks))
    local ok, _, forcible = cache:set(ctx.cache_key, entry)
    if not ok then
        count("no_memory", ctx.cache_model)
    elseif forcible then
        count("evicted", ctx.cache_model)
    end
end

--[[ Prometheus exposition lines: lookups by result, and entries not stored or
evicted, per model; the dictionary's free bytes. ]]
function M.exposition(out)
    local lookups, others = {}, {}
    for _, k in ipairs(counters:get_keys(0)) do
        local what, model = k:match("^cache|([%a_]+)|(.*)$")
        if what then
            local value = counters:get(k) or 0
            if what == "hit" or what == "miss" or what == "bypass" then
                lookups[#lookups + 1] = 'twinserve_cache_requests_total{model="' .. model .. '",result="' .. what
                    .. '"} ' .. value
            else
                others[#others + 1] = 'twinserve_cache_not_kept_total{model="' .. model .. '",reason="' .. what
                    .. '"} ' .. value
            end
        end
    end
    out[#out + 1] = "# HELP twinserve_cache_requests_total Requests to a model's routes, by what the cache did."
    out[#out + 1] = "# TYPE twinserve_cache_requests_total counter"
    for _, line in ipairs(lookups) do
        out[#out + 1] = line
    end
    out[#out + 1] = "# HELP twinserve_cache_not_kept_total Answers not stored (too_large, no_memory) or stored by "
        .. "evicting older ones (evicted)."
    out[#out + 1] = "# TYPE twinserve_cache_not_kept_total counter"
    for _, line in ipairs(others) do
        out[#out + 1] = line
    end
    local ok, free = pcall(cache.free_space, cache)
    if ok and free then
        out[#out + 1] = "# HELP twinserve_cache_free_bytes Free space of the response cache's dictionary."
        out[#out + 1] = "# TYPE twinserve_cache_free_bytes gauge"
        out[#out + 1] = "twinserve_cache_free_bytes " .. free
    end
end

return M
