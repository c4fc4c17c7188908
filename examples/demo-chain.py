# Demo tool chain: the body of an async function.  Tools are manual.tool(...).
count = await demo.word_count(text="the quick brown fox jumps over the lazy dog")
greeting = demo.greet(name="platform team")          # plain calls work too
print("word_count returned", count)
print(greeting)
return {"words": count["words"], "greeting": greeting}
