-- wrk script for the page-view scenario (bench/run.py): POST /api/visitor/track with real
-- visitor tokens (one per line in the file named after "--"), as the widget sends a beacon:
-- text/plain JSON with a 100-character URL, a 60-character title and a referrer.
local bodies = {}
local i = 0

function init(args)
  local n = 0
  for token in io.lines(args[1]) do
    if #token > 0 then
      n = n + 1
      local url = string.format(
        "https://www.example-shop.com/catalogue/garden/tools/item-%08d?utm_source=news&ref=", n)
      url = url .. string.rep("x", 100 - #url)
      local title = string.format(
        "Stainless steel garden spade, ash handle - item %08d | Shop", n)
      title = title .. string.rep(" ", 60 - #title)
      bodies[n] = string.format(
        '{"token": "%s", "url": "%s", "title": "%s", "referrer": "https://www.google.com/"}',
        token, url, title)
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
  wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    .. "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
end

function request()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
